"""Fetching a subscribed feed again: a conditional GET that costs nothing when the
feed has not changed.

The request sends the validators of the feed's last answer (``If-None-Match`` with
its ETag, ``If-Modified-Since`` with its Last-Modified); a ``304 Not Modified``
answer has no body and is returned as such. Permanent redirects (301, 308) from
the first request on are reported, so the caller can store the new address; 429
and 503 answers raise :class:`RetryLater` with the server's Retry-After. Every
address, redirects included, passes :func:`kbase.sources.fetch.check_url`, and the
body is capped like :func:`kbase.sources.fetch.fetch`'s.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin

import httpx

from kbase.errors import FetchError, InputError

# The body cap, the timeout message and the wording of network errors are fetch.py's
# own (private there: one implementation of them, whatever fixes it gets).
from kbase.sources.fetch import (
    MAX_REDIRECTS,
    USER_AGENT,
    Download,
    check_url,
    describe_error,
    read_capped,
    timed_out,
)
from kbase.sources.messages import one_line, shown_url

_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml, application/xml;q=0.9, "
    "text/xml;q=0.9, */*;q=0.1"
)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
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
) -> FeedAnswer:
    """GET ``url`` unless it is unchanged since the answer ``etag`` and
    ``last_modified`` came with.

    ``timeout`` bounds each network step and the whole download, ``max_bytes`` the
    body. Connection problems, timeouts and other non-2xx answers raise
    :class:`FetchError`; 429 and 503 raise :class:`RetryLater`.
    """
    check_url(url)
    shown = shown_url(url)
    deadline = time.monotonic() + timeout
    headers = {"User-Agent": USER_AGENT, "Accept": _ACCEPT}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    moved_to: str | None = None
    permanent = True
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False, headers=headers) as client:
            current = url
            for _ in range(MAX_REDIRECTS + 1):
                with client.stream("GET", current) as response:
                    status = response.status_code
                    if status in _REDIRECTS and "location" in response.headers:
                        current = _redirect_target(shown, current, response.headers["location"])
                        permanent = permanent and status in _PERMANENT
                        if permanent:
                            moved_to = current
                        continue
                    if status == 304:
                        return FeedAnswer(
                            None,
                            response.headers.get("etag") or etag,
                            response.headers.get("last-modified") or last_modified,
                            moved_to,
                        )
                    if status in _BUSY:
                        wait = retry_after_seconds(response.headers.get("retry-after"))
                        asked = f"; it asks to wait {wait:g} s" if wait is not None else ""
                        raise RetryLater(
                            f"could not fetch {shown}: HTTP {status} "
                            f"{one_line(response.reason_phrase, 60)}{asked}",
                            wait,
                        )
                    if not 200 <= status < 300:
                        reason = one_line(f"HTTP {status} {response.reason_phrase}", 80)
                        raise FetchError(f"could not fetch {shown}: {reason}; check the address")
                    data = read_capped(shown, response, max_bytes, deadline, timeout)
                    return FeedAnswer(
                        Download(current, data, response.headers.get("content-type")),
                        response.headers.get("etag"),
                        response.headers.get("last-modified"),
                        moved_to,
                    )
    except httpx.TimeoutException:
        raise timed_out(shown, timeout) from None
    except httpx.InvalidURL as exc:
        raise InputError(f"{shown} is not a valid URL ({one_line(exc)})") from None
    except httpx.HTTPError as exc:
        raise FetchError(
            f"could not fetch {shown}: {describe_error(exc)}; check the address and your network"
        ) from None
    raise FetchError(
        f"could not fetch {shown}: more than {MAX_REDIRECTS} redirects; check the address"
    )


def _redirect_target(shown: str, current: str, location: str) -> str:
    target = urljoin(current, location.strip())
    try:
        check_url(target)
    except InputError as exc:
        raise FetchError(
            f"could not fetch {shown}: it redirects to {shown_url(target)}, which is refused "
            f"({one_line(exc, 120)})"
        ) from None
    return target
