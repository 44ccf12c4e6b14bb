"""Fetching a subscribed feed again: a conditional GET that costs nothing when the
feed has not changed.

The request sends the validators of the feed's last answer (``If-None-Match`` with
its ETag, ``If-Modified-Since`` with its Last-Modified); a ``304 Not Modified``
answer has no body and is returned as such. Permanent redirects (301, 308) from
the first request on are reported, so the caller can store the new address; 429
and 503 answers raise :class:`RetryLater` with the server's Retry-After. The
request itself is :func:`kbase.sources.fetch.request`'s: every address, redirects
included, under the URL policy, and the body capped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from kbase.errors import FetchError
from kbase.sources.fetch import Download, request
from kbase.sources.messages import one_line, shown_url

_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml, application/xml;q=0.9, "
    "text/xml;q=0.9, */*;q=0.1"
)
_PERMANENT = frozenset({301, 308})
_BUSY = frozenset({429, 503})


@dataclass(frozen=True)
class FeedAnswer:
    """What a conditional fetch gave: the body (None: 304 Not Modified), the
    validators to send next time, and where permanent redirects led."""

    download: Download | None
    etag: str | None
    last_modified: str | None
    #: The address the first request's permanent redirects (301, 308, in a row)
    #: led to: the feed's new address. None when it did not move.
    moved_to: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.download is None


class RetryLater(FetchError):
    """The server is busy (HTTP 429 or 503); ``retry_after`` is the seconds it asked
    to wait (None: it did not say)."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """A Retry-After header (seconds, or an HTTP date) as seconds from ``now``."""
    if not value or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


def fetch_if_changed(
    url: str,
    *,
    etag: str | None,
    last_modified: str | None,
    max_bytes: int,
    timeout: float,
    allow_private: bool | None = None,
) -> FeedAnswer:
    """GET ``url`` unless it is unchanged since the answer ``etag`` and
    ``last_modified`` came with, under the URL policy of
    :func:`kbase.sources.fetch.request` (``allow_private``: see there).

    ``timeout`` bounds each network step and the whole download, ``max_bytes`` the
    body. A refused address, connection problems, timeouts and other non-2xx
    answers raise :class:`FetchError`; 429 and 503 raise :class:`RetryLater`.
    """
    headers = {"Accept": _ACCEPT}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    reply = request(
        url, headers=headers, max_bytes=max_bytes, timeout=timeout, allow_private=allow_private
    )
    moved_to = _moved_to(reply.hops)
    shown = shown_url(url)
    status = reply.status
    if status == 304:
        return FeedAnswer(
            None,
            reply.headers.get("etag") or etag,
            reply.headers.get("last-modified") or last_modified,
            moved_to,
        )
    if status in _BUSY:
        wait = retry_after_seconds(reply.headers.get("retry-after"))
        asked = f"; it asks to wait {wait:g} s" if wait is not None else ""
        raise RetryLater(
            f"could not fetch {shown}: HTTP {status} {one_line(reply.reason, 60)}{asked}", wait
        )
    if reply.data is None:
        reason = one_line(f"HTTP {status} {reply.reason}", 80)
        raise FetchError(f"could not fetch {shown}: {reason}; check the address")
    return FeedAnswer(
        reply.download(), reply.headers.get("etag"), reply.headers.get("last-modified"), moved_to
    )


def _moved_to(hops: tuple[tuple[int, str], ...]) -> str | None:
    """Where the leading permanent redirects (301, 308 in a row) led."""
    moved_to = None
    for status, target in hops:
        if status not in _PERMANENT:
            break
        moved_to = target
    return moved_to
