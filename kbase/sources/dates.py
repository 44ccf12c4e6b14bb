"""Publication dates: ISO 8601, RFC 822/2822 and plain ``YYYY-MM-DD``, as naive UTC."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def to_naive_utc(value: datetime) -> datetime:
    """``value`` converted to UTC and stripped of its timezone (naive values are kept as is)."""
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=None)
    return value.astimezone(UTC).replace(tzinfo=None)


def parse_date(value: str) -> datetime | None:
    """Parse a date or date-time string into a naive UTC datetime, or ``None``.

    Accepted: ``YYYY-MM-DD`` (midnight), ISO 8601 date-times with or without an offset
    (``Z`` included; without one the value is taken as UTC) and RFC 822/2822 dates such as
    ``Tue, 04 Jun 2024 09:30:00 +0200`` as found in RSS feeds.
    """
    text = value.strip()
    if not text:
        return None
    try:
        if _DATE_ONLY.match(text):
            return datetime.strptime(text, "%Y-%m-%d")
        return to_naive_utc(_parse_iso(text))
    except (ValueError, OverflowError):
        pass
    try:
        return to_naive_utc(parsedate_to_datetime(text))
    except (ValueError, TypeError, IndexError, OverflowError):
        return None


def from_struct_time(value: time.struct_time | None) -> datetime | None:
    """A UTC ``struct_time`` (as feedparser gives) as a naive datetime, or ``None``."""
    if value is None:
        return None
    try:
        return datetime(*value[:6])
    except (ValueError, TypeError, OverflowError):
        return None


def _parse_iso(text: str) -> datetime:
    # ``fromisoformat`` wants an upper-case ``T`` and ``Z``.
    if len(text) > 10 and text[10] in "t ":
        text = text[:10] + "T" + text[11:]
    if text.endswith("z"):
        text = text[:-1] + "Z"
    return datetime.fromisoformat(text)
